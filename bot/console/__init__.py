"""The web console for admins, served by `teambot serve` under /console."""

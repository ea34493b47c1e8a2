"""Crawling: fetching what a site source lists, politely and behind the SSRF guard.

``crawler.py`` drives it; ``netguard.py`` refuses private addresses, ``bounded_body.py``
caps and decodes every body, ``robots.py`` and ``sitemap.py`` read what a site publishes,
``links.py`` and ``urls.py`` decide what is in scope.
"""

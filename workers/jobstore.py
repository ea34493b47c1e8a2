"""APScheduler's SQL job store, made safe for several workers sharing one table.

APScheduler 3 assumes one scheduler per job store: two workers that both find a
job due would both run it. Here each due job is claimed first, by moving its
``next_run_time`` forward with a conditional UPDATE on the value just read;
only the worker whose UPDATE matched runs that tick, the others see it done.
Updates and removals of a job another worker already removed are no-ops.
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import select

log = logging.getLogger(__name__)


class SharedJobStore(SQLAlchemyJobStore):
    """A SQLAlchemyJobStore on which every tick of a job runs on exactly one scheduler."""

    def get_due_jobs(self, now: datetime) -> list[Job]:
        if self._scheduler.state == STATE_STOPPED:
            return []  # APScheduler looks once more while stopping; a claim now would be lost
        stamp = datetime_to_utc_timestamp(now)
        with self.engine.begin() as connection:
            due_at = dict(
                connection.execute(
                    select(self.jobs_t.c.id, self.jobs_t.c.next_run_time).where(
                        self.jobs_t.c.next_run_time <= stamp
                    )
                ).all()
            )
        if not due_at:
            return []
        return [
            job
            for job in super().get_due_jobs(now)
            if job.id in due_at and self._claim(job, due_at[job.id], now)
        ]

    def _claim(self, job: Job, stored_at: float, now: datetime) -> bool:
        """Move the job's stored next run past ``now`` unless another worker already has."""
        run_times = job._get_run_times(now)
        following = job.trigger.get_next_fire_time(run_times[-1] if run_times else None, now)
        jobs, claimed = self.jobs_t, self.jobs_t.c.next_run_time == stored_at
        with self.engine.begin() as connection:
            if following is None:  # its last tick: claiming it removes it
                taken = connection.execute(jobs.delete().where(jobs.c.id == job.id, claimed))
            else:
                taken = connection.execute(
                    jobs.update()
                    .where(jobs.c.id == job.id, claimed)
                    .values(next_run_time=datetime_to_utc_timestamp(following))
                )
        if taken.rowcount != 1:
            log.debug("job %s: this tick was taken by another worker", job.id)
        return taken.rowcount == 1

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except JobLookupError:
            log.debug("job %s was removed by another worker; nothing to update", job.id)

    def remove_job(self, job_id: str) -> None:
        try:
            super().remove_job(job_id)
        except JobLookupError:
            log.debug("job %s was already removed by another worker", job_id)

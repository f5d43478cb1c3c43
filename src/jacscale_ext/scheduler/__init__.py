"""Scheduled walkers and functions (`@schedule`) and the `/jobs` API.

- `triggers.py`: interval / cron / date triggers, validated, and their next fire time;
- `jobs.py`: the job record and the JobStore protocol (lease + jobs) stores implement;
- `sqlite_jobs.py`: the embedded store's job store (tables in the SQLite database);
- `service.py`: the scheduler loop: one leader per store fires each due job once;
- `routes.py`, `openapi.py`: `GET|POST /jobs`, `GET|PUT|DELETE /jobs/{job_id}`;
- `plugin.py`: the hook implementations (a built-in plugin).
"""

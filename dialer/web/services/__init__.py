"""What the page's routes ask for: its state and its work (campaigns, uploads, reports,
checks and runs as child processes, syncs, test calls, schedules). No module here adds a
route or imports a view; `dialer/web/__init__.py` lists each with its job."""

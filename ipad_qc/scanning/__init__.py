"""The parts of a scan, one job each; :func:`ipad_qc.scanner.scan` puts them together.

``types``: options, summary and progress callbacks. ``selection``: which run-folder rows a scan
covers, keeps and removes, and which files need work. ``jobs``: hashing and decoding one file in a
worker process. ``pipeline``: decode workers and detection batches on this machine. ``writer``:
masks, maps, thumbnails and result rows of finished files, committed once per batch.
"""

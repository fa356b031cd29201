"""`make bench`: one module per part measured, the shared meter and deployed settings, the report; run.py runs them."""

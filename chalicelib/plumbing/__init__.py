"""AWS plumbing every capability may use, and that uses nothing of the domain: accounts and sessions,
AWS's names and events, settings, observability, small caches."""

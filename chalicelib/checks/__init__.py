"""Configuration checks: what would make a group's next mount fail, seen from the API before a host launches
(CONTRACT "Configuration checks"). Each problem is one sentence that starts with its rule id and names the
resource to fix; a check that cannot be sure reports nothing and logs what it could not read."""

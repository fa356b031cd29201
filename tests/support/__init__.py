"""What several test files build or read the same way, one module per thing it helps with."""

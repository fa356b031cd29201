"""Local stand-ins for AWS and for the hosts, for the tests and `make demo`. Never shipped to Lambda."""

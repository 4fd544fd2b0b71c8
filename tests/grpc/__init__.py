"""End-to-end tests of the gRPC API against a real server on loopback."""

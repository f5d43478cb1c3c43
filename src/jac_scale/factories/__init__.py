"""Compatibility factories for programs written for jac-scale."""

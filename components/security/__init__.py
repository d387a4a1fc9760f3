"""Workload hardening shared by every layer: Pod Security levels and NetworkPolicies."""

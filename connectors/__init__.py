"""Connectors: find billing exports, read them and hand the store FOCUS 1.2 rows.

A connector knows one provider's delivery and formats; it never knows a rule.
"""

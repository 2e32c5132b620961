"""Accounts: users and roles, sign-in, browser sessions, access tokens, the audit trail."""

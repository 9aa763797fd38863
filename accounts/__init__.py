"""Accounts: logins, the groups viewers/operators/administrators and what each may do."""

"""Helpers shared by every test folder (no tests here): names, orders, the API client,
PostgreSQL databases and the domain builders."""

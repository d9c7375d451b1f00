"""Storage: one interface (`base.Store`), two engines (SQLite and PostgreSQL)."""

"""Cost control: run guards, budgets, the spend ledger, reports and alerts."""

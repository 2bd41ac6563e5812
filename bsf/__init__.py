"""Bootstrapping Server Function (TS 33.220): Ub over HTTP, Zh client toward the HSS, context store."""

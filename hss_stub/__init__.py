"""HSS stub: a Zh Diameter server (TS 29.109) with Milenage vectors, SQN management and GUSS."""

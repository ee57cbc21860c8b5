"""Review: from the machine draft to a checked transcript, every correction a revision on the record."""

"""Writing study data out: frequency tables, excerpt reports, REFI-QDA projects."""

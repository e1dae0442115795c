"""What a vote is and how it counts: pure functions and models, no I/O."""

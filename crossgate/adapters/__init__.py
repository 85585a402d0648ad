"""The I/O shells around `crossgate.sansio`: threads, event loops, queues, back-pressure."""

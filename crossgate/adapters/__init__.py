"""The I/O shells around :mod:`crossgate.sansio`: threads, event loops, queues, back-pressure."""

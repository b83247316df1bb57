"""Platform adapters: translate platform events to neutral Questions/Threads and render Answers back."""

"""Platform adapters: platform events → neutral models → core; neutral answers → platform messages."""

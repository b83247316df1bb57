"""Operations: health and readiness endpoints, Prometheus metrics, structured logging, graceful shutdown."""

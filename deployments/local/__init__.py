"""The local development stack (Kafka, Redis, FerretDB as plain processes): see README.md here."""

"""Webhook delivery: Standard Webhooks signing, endpoints, the dispatcher, quirks."""

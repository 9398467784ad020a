"""Other providers' APIs, spoken at the edge over Sandbank's one domain (see `creditkey`)."""

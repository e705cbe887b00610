"""The fleet feed: each final inspection record published to an MQTT broker, with an online/offline status."""

"""Pure ASGI middleware, composed once, in order, by `simulator.app.create_app`."""

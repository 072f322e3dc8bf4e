"""The load engine: flocks of bot monkeys running businesses against the platform."""

"""SIA v2 queries: parameter sets as mobu's SIAQuerySetRunner draws them, and a timed client."""

"""The foundations: the initializer protocol, sampling in every dtype, fans, gains, descriptions."""

"""Code cache: where translated fragments live, how they are found, linked and invalidated."""

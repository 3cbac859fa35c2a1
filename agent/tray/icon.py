"""Draw the tray icon for an ``IconSpec`` with Pillow: one shape and one colour per state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.tray.model import IconSpec

if TYPE_CHECKING:
    from PIL.Image import Image

SIZE = 64  # trays scale it down (pystray's X11 backend resizes to the slot it is given)


def render(spec: IconSpec, size: int = SIZE) -> Image:
    """An RGBA image: green disc, amber pause bars, grey ring, red triangle with a white '!', or blue '?'."""
    from PIL import Image, ImageDraw

    # The X11 backend pastes without alpha, so transparent pixels would be black on a light panel:
    # a light neutral background keeps every shape legible on dark and light trays alike.
    image = Image.new("RGBA", (size, size), (236, 236, 236, 255))
    draw = ImageDraw.Draw(image)
    pad = size // 8
    box = (pad, pad, size - pad - 1, size - pad - 1)
    if spec.shape == "disc":
        draw.ellipse(box, fill=spec.colour)
    elif spec.shape == "ring":
        draw.ellipse(box, outline=spec.colour, width=max(2, size // 9))
    elif spec.shape == "pause-bars":
        bar = size // 5
        gap = size // 8
        left = size // 2 - gap // 2 - bar
        right = size // 2 + gap // 2
        draw.rectangle((left, pad, left + bar, size - pad - 1), fill=spec.colour)
        draw.rectangle((right, pad, right + bar, size - pad - 1), fill=spec.colour)
    elif spec.shape == "question":
        draw.rectangle(box, fill=spec.colour)
        white = (255, 255, 255)
        stroke = max(2, size // 12)
        mid, sixteenth = size // 2, size // 16
        draw.arc((5 * sixteenth, 3 * sixteenth, 11 * sixteenth, 9 * sixteenth), 180, 90, fill=white, width=stroke)
        draw.rectangle((mid - stroke // 2, 9 * sixteenth - stroke, mid + stroke // 2, 11 * sixteenth), fill=white)
        draw.rectangle((mid - stroke // 2, 12 * sixteenth, mid + stroke // 2, 12 * sixteenth + stroke), fill=white)
    else:  # triangle
        draw.polygon([(size // 2, pad), (size - pad - 1, size - pad - 1), (pad, size - pad - 1)], fill=spec.colour)
        stem = max(2, size // 14)
        mid = size // 2
        draw.rectangle((mid - stem, size * 3 // 8, mid + stem, size * 11 // 16), fill=(255, 255, 255))
        draw.rectangle((mid - stem, size * 3 // 4, mid + stem, size * 3 // 4 + 2 * stem), fill=(255, 255, 255))
    return image

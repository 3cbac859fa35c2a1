"""The employee's tray icon: a pure menu model, an icon renderer, and a thin pystray adapter."""

"""The in-bot backtest cycle (``backtest.enable_backtest``): on a schedule, a low-priority child process chain
(``python -m replay fetch`` → ``optimize`` → ``apply``) searches the tuned parameters on recent data; the bot
notifies about the outcome and swaps approved parameters in at a safe point.

Modules: :mod:`~bot.cycle.schedule` (when), :mod:`~bot.cycle.runner` (the child processes),
:mod:`~bot.cycle.calibrate` (the optional calibration session before the backtest,
``python -m calibration record|stats|fit``), :mod:`~bot.cycle.notify` (log + webhook),
:mod:`~bot.cycle.hotswap` (parameters into the live components),
:mod:`~bot.cycle.overlay` (watching and validating the overlay file), :mod:`~bot.cycle.snapshot` (the settings
the children get), :mod:`~bot.cycle.rotation` (cleanup),
:mod:`~bot.cycle.service` (the asyncio tasks tying them to the running bot). ``bot`` never imports ``replay`` or
``calibration``: they run only as child processes (``sys.executable -m replay`` / ``-m calibration``).
"""

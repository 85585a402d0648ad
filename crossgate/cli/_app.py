"""What ``crossgate serve`` hands its server: ``crossgate.cli._app:application``."""

from crossgate.cli._servers import ServeCommand

application = ServeCommand.from_environment().build()

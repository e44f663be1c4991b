import GatewayApp
import Glibc

exit(KimiGatewayCommand.main(CommandLine.arguments))

from rootless.cli.main import main

main()

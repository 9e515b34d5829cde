from rootless.main import main

main()

from iap.cli.main import main

main()

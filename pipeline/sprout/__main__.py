from sprout.cli.app import main

main()

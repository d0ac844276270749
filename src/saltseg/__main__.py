from saltseg.cli import main

main()

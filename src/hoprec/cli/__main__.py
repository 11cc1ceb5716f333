from hoprec.cli import main

main()

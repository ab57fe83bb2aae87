from flyte_decl.cli.main import main

main()

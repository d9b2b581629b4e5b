from voicekit.cli import main

main()

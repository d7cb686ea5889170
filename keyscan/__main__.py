from keyscan.cli import main

raise SystemExit(main())

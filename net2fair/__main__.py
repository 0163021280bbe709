from net2fair.cli import main

raise SystemExit(main())

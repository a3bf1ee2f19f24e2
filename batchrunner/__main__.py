from batchrunner.cli import main

raise SystemExit(main())

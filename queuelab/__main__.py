from queuelab.cli import main

raise SystemExit(main())

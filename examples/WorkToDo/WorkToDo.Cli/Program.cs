using WorkToDo.Cli;

// worktodo-cli (cli_01): worktodo-cli --id 7 [--call-type http|db]  or  worktodo-cli --work-code api- [--since 6h]
return await WorkCli.ForConsole().RunAsync(args);

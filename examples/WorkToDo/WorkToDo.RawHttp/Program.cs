using WorkToDo.RawHttp;

// worktodo-raw (cli_02): worktodo-raw http://127.0.0.1:5090/work/1  or  worktodo-raw -X POST http://127.0.0.1:5090/work
return await RawHttpCli.ForConsole().RunAsync(args);
